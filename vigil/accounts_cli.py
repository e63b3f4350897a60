"""``vigil accounts``: create customer and operator logins, reset a password, set a customer profile."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import secrets
import sys

from vigil import profile_cli
from vigil.errors import ConfigError, RejectedInput


def add_parser(sub) -> None:
    acc = sub.add_parser("accounts", help="API logins of customers and assistance-centre operators")
    acc_sub = acc.add_subparsers(dest="action", required=True)
    cust = acc_sub.add_parser("add-customer", help="a customer login; its devices are those with --owner CUSTOMER_ID")
    cust.add_argument("username")
    cust.add_argument("--customer-id", required=True, help="the owner id given to the customer's devices")
    cust.add_argument("--email", required=True, help="where confirmation codes go")
    op = acc_sub.add_parser("add-operator", help="an assistance-centre login (sees every device)")
    op.add_argument("username")
    op.add_argument("--email", required=True)
    reset = acc_sub.add_parser("set-password", help="reset a password, lift a lockout, end its sessions")
    reset.add_argument("username")
    for p in (cust, op, reset):
        p.add_argument("--password", default=None,
                       help="default: asked for on a terminal, else generated and printed once")
    profile_cli.add_parser(acc_sub)


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated?)."""
    if args.password is not None:
        return args.password, False
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise ConfigError("the passwords differ")
        return first, False
    return secrets.token_urlsafe(12), True


async def run(settings, args, database) -> int:
    from accounts import AuthConfig, Passwords, service

    if args.action == "profile":
        return await profile_cli.run(settings, args, database)
    passwords = Passwords(AuthConfig.ephemeral())
    password, generated = _password(args)
    async with database(settings) as db:
        try:
            if args.action == "set-password":
                if not await service.set_password(db, passwords, username=args.username, password=password,
                                                  now=dt.datetime.now(dt.timezone.utc)):
                    raise ConfigError(f"no account {args.username!r}")
                caller = None
            else:
                role = "customer" if args.action == "add-customer" else "operator"
                caller = await service.create_account(
                    db, passwords, username=args.username, email=args.email, role=role, password=password,
                    customer_id=getattr(args, "customer_id", None))
        except RejectedInput as exc:
            raise ConfigError(str(exc)) from exc
    if caller is not None:
        who = f"customer {caller.customer_id}" if caller.customer_id else "operator"
        print(f"account {caller.username} ({who}) created")
    else:
        print(f"password of {args.username} reset; its sessions are ended")
    if generated:
        print(f"password (shown once): {password}")
    return 0


async def demo_logins(db, *, customer_id: str) -> list[tuple[str, str, str]]:
    """The demo's logins, ``demo`` (the customer owning the demo cars) and ``operator``, each with a new
    random password this run: (username, password, role)."""
    from accounts import AuthConfig, Passwords, service

    passwords = Passwords(AuthConfig.ephemeral())
    now = dt.datetime.now(dt.timezone.utc)
    out = []
    for username, role in (("demo", "customer"), ("operator", "operator")):
        password = secrets.token_urlsafe(9)
        if not await service.set_password(db, passwords, username=username, password=password, now=now):
            await service.create_account(db, passwords, username=username, email=f"{username}@example.org",
                                         role=role, password=password,
                                         customer_id=customer_id if role == "customer" else None)
        out.append((username, password, role))
    return out
