"""``wonderland console``: open the developer console of the running daemon.

It reads the console's URL from ``daemon.json`` (what ``wonderland up`` published), prints
it with where the sign-in token is, and opens it in the default browser unless
``--no-open`` is given or there is no browser (a server, an SSH session). The browser gets a
one-time sign-in link (a ticket signed with the platform's token, good for a minute), so it
opens signed in; the printed URL is the plain one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "console",
        help="open the developer console in a browser",
        description="Print the running daemon's console URL and open it in a browser "
        "(docs/console.md). Sign in with the platform's token (the kubeconfig's).",
    )
    p.add_argument(
        "--no-open", action="store_true", help="only print the URL; do not start a browser"
    )
    p.set_defaults(handler=_console)


def console_url(info: dict[str, object] | None) -> str:
    """The URL users open, from daemon.json's ``console`` entry; a clear error otherwise."""
    from wonderland.errors import WonderlandError

    if info is None:
        raise WonderlandError("no daemon is running; start one with `wonderland up`")
    console = info.get("console")
    if not isinstance(console, dict):
        raise WonderlandError("the running daemon has no console; upgrade and restart it")
    if console.get("state") != "running" or not console.get("url"):
        why = console.get("reason") or f"its state is {console.get('state', 'unknown')}"
        raise WonderlandError(f"the console is not served: {why}")
    return str(console["url"]) + "/"


def _console(args: argparse.Namespace) -> int:
    import webbrowser

    from wonderland.daemon import daemon_info
    from wonderland.kubeconfig import kubeconfig_path
    from wonderland.settings import Settings

    settings = Settings.from_env()
    url = console_url(daemon_info(settings.state_dir))
    print(f"console: {url}")
    print(
        f"sign in with the platform's token: the `token` of {kubeconfig_path(settings.state_dir)} "
        f"(also in {settings.state_dir / 'token'})"
    )
    if args.no_open:
        return 0
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        print("no browser found here: open the URL above in one")
        return 0
    if not browser.open(_sign_in_link(url, settings.state_dir / "token")):
        print("the browser did not start: open the URL above in one")
    return 0


def _sign_in_link(url: str, token_file: Path) -> str:
    """``url`` as a one-time sign-in link, or as it is when the token cannot be read."""
    from urllib.parse import urlencode

    from wonderland.console.security import sign_in_ticket

    try:
        token = token_file.read_text().strip()
    except OSError:
        return url
    if not token:
        return url
    return f"{url}signin?{urlencode({'ticket': sign_in_ticket(token), 'next': '/'})}"
