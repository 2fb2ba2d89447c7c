"""The operator page: a small local web page showing what `lineledger-edge status` shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, render_template


def create_operator_app(status: Callable[[], dict[str, Any]]) -> Flask:
    """Build the operator page app around a function that returns the current status."""
    app = Flask(__name__)

    @app.get("/")
    def page() -> str:
        return render_template("operator.html", status=status())

    @app.get("/status.json")
    def status_json() -> Any:
        response = jsonify(status())
        response.headers["Cache-Control"] = "no-store"
        return response

    return app
