"""Per-device MQTT credentials, and the Mosquitto password file and ACL Vigil generates from them.

Every device logs in to the broker with its external id as username and a password of its own; gateway
and simulator accounts are named by the operator. Only password hashes are stored (table
``mqtt_credentials``), in the format of Mosquitto 2.0's password file, ``$7$<iterations>$<salt>$<hash>``:
PBKDF2-HMAC-SHA512 over a 12-byte random salt, 64-byte output, both standard base64, 101 iterations
(``mosquitto_passwd``'s default). Mosquitto re-reads both files on SIGHUP.

The ACL gives rights by role, with ``pattern`` lines (they apply to every user, ``%u`` = username):

* a device publishes only under ``vigil/v1/+/<its id>/+`` (and OwnTracks ``owntracks/<its id>/+``) and
  reads only its command topic ``vigil/v1/+/<its id>/cmd``; an OwnTracks phone ``user:device`` logs in
  as ``user`` (:func:`broker_username`), so it publishes ``owntracks/<user>/+``;
* a gateway reads ``vigil/v1/#`` and ``owntracks/#`` (``$share/<group>/...`` subscriptions included);
* a simulator (load generator, demo) writes ``vigil/v1/#`` and ``owntracks/#``: it can speak for any
  device, so never issue one on a broker that carries real customers' devices.

The pure parts (hashing, rendering) are tested without a network; the async functions take a
:class:`storage.Database`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Iterable

from storage import devices
from storage.db import Database
from vigil.errors import NotFound, RejectedInput

ROLES = ("device", "gateway", "simulator")
ACCOUNT_ROLES = ("gateway", "simulator")
#: 101: ``mosquitto_passwd``'s default in Mosquitto 2.0 (``PW_DEFAULT_ITERATIONS``).
DEFAULT_ITERATIONS = 101
#: 12 bytes: the salt length ``mosquitto_passwd`` writes (``SALT_LEN``).
SALT_BYTES = 12
#: 64: ``ingest.topics.MAX_DEVICE_ID_LEN``, since a device's username is its id.
MAX_USERNAME_LEN = 64
#: Characters a username may not hold: topic separators and wildcards (``%u`` is substituted into ACL
#: topics), the password file's ``:`` separator, and whitespace (line-based files).
_FORBIDDEN = frozenset("/+#:")


def check_username(username: str) -> str:
    """Return ``username`` if it is safe in the password file, the ACL and a topic level; else refuse it
    as ``invalid_username``."""
    if not (1 <= len(username) <= MAX_USERNAME_LEN):
        raise RejectedInput("invalid_username", f"username must be 1-{MAX_USERNAME_LEN} characters")
    if username.startswith("$") or any(c in _FORBIDDEN or c.isspace() or not c.isprintable() for c in username):
        raise RejectedInput(
            "invalid_username", f"{username!r}: no '/', '+', '#', ':', whitespace or leading '$' allowed"
        )
    return username


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS) -> str:
    """Mosquitto 2.0 password-file hash ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>``."""
    if iterations < 1:
        raise ValueError("iterations must be positive")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a Mosquitto hash: ``$7$`` (2.0, PBKDF2-SHA512) or ``$6$`` (1.x,
    SHA512 of password then salt). A malformed hash matches nothing."""
    parts = encoded.split("$")
    try:
        if len(parts) == 5 and parts[:2] == ["", "7"]:
            iterations = int(parts[2])
            salt, expected = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
            if not 1 <= iterations <= 10_000_000:
                return False
            actual = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
        elif len(parts) == 4 and parts[:2] == ["", "6"]:
            salt, expected = base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
            actual = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def new_password() -> str:
    """A fresh random password: 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def render_password_file(entries: Iterable[tuple[str, str]]) -> str:
    """Mosquitto ``password_file`` text from ``(username, password_hash)`` pairs, one ``user:hash`` a line."""
    lines = []
    for username, password_hash in entries:
        check_username(username)
        if not password_hash.startswith(("$7$", "$6$")) or any(c in password_hash for c in ":\r\n"):
            raise ValueError(f"not a Mosquitto password hash for {username!r}")
        lines.append(f"{username}:{password_hash}\n")
    return "".join(lines)


def render_acl(gateway_users: Iterable[str], simulator_users: Iterable[str]) -> str:
    """Mosquitto ``acl_file`` text: device rights as patterns, then one ``user`` block per account.

    Mosquitto's acl_file has no role groups; a ``pattern`` line binds every authenticated user, a
    ``topic`` line only the user named by the ``user`` line above it. Patterns also bind gateway and
    simulator accounts, which is why an account may not take a device's id as its name.
    """
    out = [
        "# Generated by Vigil (ingest.mqtt_auth) from the mqtt_credentials table; edits are overwritten.\n",
        "# Devices: username = device id. Publish only their own topics, read only their command topic.\n",
        "pattern write vigil/v1/+/%u/+\n",
        "pattern read vigil/v1/+/%u/cmd\n",
        "pattern write owntracks/%u/+\n",
    ]
    for username in gateway_users:
        out += [f"\nuser {check_username(username)}\n", "topic read vigil/v1/#\n", "topic read owntracks/#\n"]
    for username in simulator_users:
        out += [f"\nuser {check_username(username)}\n", "topic write vigil/v1/#\n", "topic write owntracks/#\n"]
    return "".join(out)


def mosquitto_auth_conf(passwd: Path, acl: Path) -> str:
    """Lines to append to a ``mosquitto.conf`` (with ``per_listener_settings false``, the default, they
    apply to every listener). Paths are made absolute: Mosquitto resolves relative ones from its cwd."""
    paths = [os.path.abspath(passwd), os.path.abspath(acl)]
    if any("\n" in p or "\r" in p for p in paths):
        raise ValueError("a path in mosquitto.conf cannot hold a line break")
    return f"allow_anonymous false\npassword_file {paths[0]}\nacl_file {paths[1]}\n"


def broker_username(device_id: str) -> str:
    """The user name a device logs in with: its registry id, except for an OwnTracks phone (registry id
    ``user:device``), which logs in as its topic's ``user``, as the OwnTracks app does by default.

    Mosquitto's password file takes everything before a line's first ``:`` as the user name, so a name
    holding ``:`` cannot be stored; the ACL pattern ``owntracks/%u/+`` then lets the phone publish its own
    topic ``owntracks/<user>/<device>``. One credential per OwnTracks user: a second phone of the same
    user finds the name taken. An id with more than one ``:`` is ambiguous and refused."""
    user, sep, device = device_id.partition(":")
    if not sep:
        return check_username(device_id)
    if not user or not device or ":" in device:
        raise RejectedInput("invalid_username", f"{device_id!r}: an OwnTracks id is 'user:device' with one ':'")
    return check_username(user)


async def issue_device_credentials(db: Database, device_ids: list[str]) -> dict[str, str]:
    """Create or rotate the password of each registered device; return device id → plaintext password,
    which the caller shows once (only the hash is stored). The user name is :func:`broker_username`.
    All or nothing: an unknown device raises :class:`NotFound`; a user name held by an account or
    another device, or a phone whose user name is another device's id (the ACL would let it write that
    device's topics), is ``username_taken``. One statement for the whole batch: 10 000 devices take
    about a second, most of it hashing."""
    ids = list(dict.fromkeys(device_ids))
    usernames = {device_id: broker_username(device_id) for device_id in ids}
    found = await devices.lookup(db, ids)
    for device_id in ids:
        if device_id not in found:
            raise NotFound("device", device_id)
    by_name: dict[str, str] = {}
    for device_id, username in usernames.items():
        if by_name.setdefault(username, device_id) != device_id:
            raise RejectedInput("username_taken", f"{by_name[username]} and {device_id} would both be {username!r}")
    phone_users = [u for d, u in usernames.items() if u != d]
    if phone_users:
        shadowed = await devices.lookup(db, phone_users)
        if shadowed:
            raise RejectedInput("username_taken", f"OwnTracks users that are device ids: {sorted(shadowed)[:5]}")
    passwords = {device_id: new_password() for device_id in ids}
    names = [usernames[d] for d in ids]
    hashes = [hash_password(passwords[d]) for d in ids]
    codes = [found[d].id for d in ids]
    async with db.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO mqtt_credentials (username, password_hash, role, device_id)"
            " SELECT u, h, 'device', d FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS c(u, h, d)"
            " ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, created_at = now()"
            " WHERE mqtt_credentials.role = 'device' AND mqtt_credentials.device_id = EXCLUDED.device_id"
            " RETURNING username",
            (names, hashes, codes),
        )
        written = {row[0] for row in await cur.fetchall()}
        taken = [d for d in ids if usernames[d] not in written]
        if taken:
            raise RejectedInput("username_taken", f"held by another account: {', '.join(taken[:20])}")
    return passwords


async def issue_account(db: Database, username: str, role: str) -> str:
    """Create or rotate a gateway or simulator account; return its plaintext password (shown once).
    A username that is a registered device id, or an account of another role, is ``username_taken``."""
    if role not in ACCOUNT_ROLES:
        raise ValueError(f"role must be one of {ACCOUNT_ROLES}")
    check_username(username)
    password = new_password()
    async with db.connection() as conn, conn.transaction():
        cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (username,))
        if await cur.fetchone() is not None:
            raise RejectedInput("username_taken", f"{username!r} is a device id")
        cur = await conn.execute(
            "INSERT INTO mqtt_credentials (username, password_hash, role) VALUES (%s, %s, %s)"
            " ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, created_at = now()"
            " WHERE mqtt_credentials.role = EXCLUDED.role"
            " RETURNING username",
            (username, hash_password(password), role),
        )
        if await cur.fetchone() is None:
            raise RejectedInput("username_taken", f"{username!r} is an account of another role")
    return password


async def write_broker_files(db: Database, directory: Path) -> tuple[Path, Path]:
    """Write ``passwd`` (mode 0600) and ``acl`` into ``directory`` from the table; return their paths.

    Only devices whose status is ``active`` get a password line: a suspended or returned device is
    refused at its next connection once Mosquitto re-reads the files (SIGHUP or restart). Each file is
    replaced atomically, so a broker reloading meanwhile reads the old or the new file, never half.
    Mosquitto run as root reads them after dropping to its ``user`` (default ``mosquitto``), who must
    be able to read them.
    """
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT c.username, c.password_hash, c.role FROM mqtt_credentials c"
            " LEFT JOIN devices d ON d.id = c.device_id"
            " WHERE c.role <> 'device' OR d.status = 'active'"
            " ORDER BY c.username"
        )
        rows = await cur.fetchall()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    passwd, acl = directory / "passwd", directory / "acl"
    _replace(passwd, render_password_file((u, h) for u, h, _ in rows), 0o600)
    _replace(
        acl,
        render_acl([u for u, _, r in rows if r == "gateway"], [u for u, _, r in rows if r == "simulator"]),
        0o644,
    )
    return passwd, acl


def _replace(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
