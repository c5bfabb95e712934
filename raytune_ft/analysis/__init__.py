"""What a run's scores support, as pure functions of its table rows: intervals and comparisons over seeds
(`stats`), the confirm stage's verdict per strategy (`confirm`), the expected best after a budget
(`budget`), and how the ranking moves with the amount of data (`data_size`)."""
