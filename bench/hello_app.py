"""The baseline: a bare Flask app answering a small JSON body, served by the same gunicorn."""
from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello():
    return {"message": "hello"}
