"""The run's HTML report (`page.write_report`) and the text both it and the CLI show: the leaderboard's
cells (`leaderboard`), the number formats (`fmt`), the figures."""
