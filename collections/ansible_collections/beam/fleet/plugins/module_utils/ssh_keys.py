# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""OpenSSH public keys and authorized_keys files, in plain Python.

Why here: the inventory validation (controller), the authorized_keys writer and the audit
(nodes) must agree on what a key is and on its fingerprint. The fingerprint is the one
`ssh-keygen -lf` prints (SHA256:<unpadded base64 of sha256(key blob)>), computed without
ssh-keygen so that the audit works the same on every node and in unit tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import re
import struct

KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
)
# How many length-prefixed strings each key type's blob holds (the type name included).
KEY_FIELDS = {
    "ssh-ed25519": 2,
    "ssh-rsa": 3,
    "ecdsa-sha2-nistp256": 3,
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
    "sk-ssh-ed25519@openssh.com": 3,
    "sk-ecdsa-sha2-nistp256@openssh.com": 4,
    "ssh-dss": 5,
}
FINGERPRINT_PATTERN = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
# sshd's default AuthorizedKeysFile
DEFAULT_AUTHORIZED_KEYS_FILES = (".ssh/authorized_keys", ".ssh/authorized_keys2")


class KeyFormatError(ValueError):
    """A public key line that is not a usable OpenSSH public key."""


def _split_options(line):
    """Split 'options keytype ...' where options may hold quoted spaces; returns (options, rest)."""
    in_quotes = False
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and in_quotes:
            index += 2
            continue
        if char == '"':
            in_quotes = not in_quotes
        elif char in " \t" and not in_quotes:
            return line[:index], line[index:].strip()
        index += 1
    return line, ""


def parse_key(line, allow_options=True):
    """Parse one public key (an authorized_keys line); returns a dict or raises KeyFormatError.

    The dict holds options (str or ''), type, blob (base64 text), comment and fingerprint.
    The key type named on the line must equal the type inside the blob, so a truncated or
    pasted-wrong key is refused instead of silently never matching.
    """
    if not isinstance(line, str):
        raise KeyFormatError("must be a string 'type base64 [comment]', got %r" % (line,))
    text = line.strip()
    if not text or text.startswith("#"):
        raise KeyFormatError("is empty")
    if "\n" in text or "\r" in text:
        raise KeyFormatError("must be one line (one key per list entry)")
    options = ""
    first = text.split(None, 1)[0]
    if first not in KEY_TYPES:
        if not allow_options:
            raise KeyFormatError("unknown key type %r (known: %s)" % (first, ", ".join(KEY_TYPES)))
        options, text = _split_options(text)
        if not text or text.split(None, 1)[0] not in KEY_TYPES:
            raise KeyFormatError("unknown key type %r (known: %s)" % (first, ", ".join(KEY_TYPES)))
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise KeyFormatError("has no key data after the type %r" % parts[0])
    key_type, blob_text = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    try:
        blob = base64.b64decode(blob_text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise KeyFormatError("key data of type %s is not valid base64" % key_type)
    fields = _blob_fields(blob)
    if not fields or fields[0].decode("ascii", "replace") != key_type:
        raise KeyFormatError("key data does not hold a %s key (truncated or mixed up?)" % key_type)
    if len(fields) != KEY_FIELDS[key_type] or (key_type == "ssh-ed25519" and len(fields[1]) != 32):
        raise KeyFormatError("key data of type %s is incomplete (truncated?)" % key_type)
    return {
        "options": options,
        "type": key_type,
        "blob": blob_text,
        "comment": comment,
        "fingerprint": fingerprint_of_blob(blob),
    }


def _blob_fields(blob):
    """The length-prefixed strings of a key blob; [] when they do not fill it exactly."""
    fields = []
    offset = 0
    while offset < len(blob):
        if len(blob) - offset < 4:
            return []
        (length,) = struct.unpack(">I", blob[offset:offset + 4])
        offset += 4
        if length > len(blob) - offset:
            return []
        fields.append(blob[offset:offset + length])
        offset += length
    return fields


def fingerprint_of_blob(blob):
    """OpenSSH's SHA256 fingerprint of a decoded key blob."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def fingerprint(line):
    """The SHA256 fingerprint of a public key line (raises KeyFormatError when it is not a key)."""
    return parse_key(line)["fingerprint"]


def key_line(key):
    """The canonical authorized_keys line of a parsed key (options kept)."""
    text = "%s %s" % (key["type"], key["blob"])
    if key.get("comment"):
        text += " " + key["comment"]
    if key.get("options"):
        text = key["options"] + " " + text
    return text


def read_text_file(path):
    """A file's text, or None when it is missing or unreadable (an account without keys)."""
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def read_authorized_keys(text):
    """Keys of an authorized_keys file's text: (keys, problems); each key has its line number."""
    keys = []
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            key = parse_key(stripped)
        except KeyFormatError as error:
            problems.append("line %d: %s" % (number, error))
            continue
        key["line"] = number
        keys.append(key)
    return keys, problems


def expand_authorized_keys_file(pattern, user, home):
    """One AuthorizedKeysFile entry for an account: %h, %u, %% expanded, relative to home."""
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "%" and index + 1 < len(pattern):
            token = pattern[index + 1]
            out.append({"h": home, "u": user, "%": "%"}.get(token, "%" + token))
            index += 2
            continue
        out.append(char)
        index += 1
    path = "".join(out)
    if not path.startswith("/"):
        path = home.rstrip("/") + "/" + path
    return path


def parse_sshd_authorized_keys_file(sshd_t_output):
    """The AuthorizedKeysFile patterns from `sshd -T` output, or None when absent."""
    for line in sshd_t_output.splitlines():
        parts = line.split()
        if parts and parts[0].lower() == "authorizedkeysfile" and len(parts) > 1:
            if parts[1:] == ["none"]:
                return []
            return parts[1:]
    return None
