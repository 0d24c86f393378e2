"""Real OpenSSH public keys and the fingerprints `ssh-keygen -lf` printed for them."""

from __future__ import annotations

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHrlnMAcdgprJdhKttf8qweJ3yyWx8R6epOiRIVtA2MH a@test"
PRINT_A = "SHA256:EsXLus/F5jDGhWH+V9K5+LE1ZXvPa5tffPj8ItwENw8"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGn47ehJky3F1kz4AjNrOmt7S+1+2P0GAkbHSkveMOoB b@test"
PRINT_B = "SHA256:8T49q+c7ghpNy32p67upyz4/A0H6V/5Q9EsV0jKzrAA"
KEY_RSA = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCk4FE9Pny23GDo05iu7NzCKc0LKCo52T5JL1OMsg0HrabfaS+2xSxDSnPfIIaR"
    "xZv0ijfjYGy9XDF3YD9dUpbvna6acjMoqlE31Q2whAICCGIhBp6+u5/cKNZ5/dDhnepuCDxaEDi+/tDVJl3mVDMoTpvZluhkH0DK"
    "/uriMgz7knSj9iuMo3IqkGBu7PArN98y/N1xwAskjSQyzKpvv90tpa5KGg2/hVoQhrOceoHV/41iEpClwRAi66n2XC4o53aii7tN"
    "kt/urUjUCP7QopRu/QukIqSWGzy2PdzNjYv3lsOs4VBJTpZkJ9NTH798wW7q/Kex9HXUlRZtPzanyfsB r@test"
)
PRINT_RSA = "SHA256:yLy8ejMErdpV2YBGHba842Kbn0sTUoyjW/vOSmtCX0Q"
