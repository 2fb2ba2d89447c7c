"""The yardstick of `bench_side_by_side.py`: a hello-world Flask app, served like central.

gunicorn -c deploy/gunicorn.conf.py --chdir bench hello_app:app
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"
