from raiox.cli import app

app()
