"""The dashboard's forms: each carries a CSRF token so a foreign page cannot post them."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):  # type: ignore[misc]
    """Username and password for a `[users]` entry of the tokens file."""

    username = StringField(
        "Username",
        validators=[DataRequired(message="Enter your username."), Length(max=200)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(message="Enter your password."), Length(max=1000)],
        render_kw={"autocomplete": "current-password"},
    )


class LogoutForm(FlaskForm):  # type: ignore[misc]
    """Empty but for its CSRF token: logging out is a POST so a link elsewhere cannot do it."""
