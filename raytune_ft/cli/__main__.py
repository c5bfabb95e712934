from raytune_ft.cli import app

app()
