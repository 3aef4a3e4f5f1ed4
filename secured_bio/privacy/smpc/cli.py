"""``secured-bio smpc``: key pairs, rosters and the relay for secure runs across hosts.

Every site makes a long-term key pair once (``smpc keygen``) and sends its certificate to
the run's coordinator, who writes the roster (``smpc roster``) and sends it to every site and
to the relay.  The relay (``smpc relay``, on any host the sites can reach; later the Innohub)
forwards sealed messages; sites only connect out to it.  See
:mod:`secured_bio.privacy.smpc.links` and SECURITY.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from secured_bio.errors import ConfigError

__all__ = ["smpc"]


@click.group("smpc")
def smpc() -> None:
    """Key pairs, rosters and the relay for secure multi-site runs across hosts."""


@smpc.command("keygen")
@click.option("--name", required=True, help="Site (or relay) name: letters, digits, - _ .")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for NAME.key.pem (private, 0600) and NAME.cert.pem (public).")
@click.option("--days", type=click.IntRange(min=1), default=730, show_default=True,
              help="Validity of the certificate.")
def keygen(name: str, out_dir: Path, days: int) -> None:
    """Make a long-term Ed25519 key pair and self-signed certificate.

    Keep NAME.key.pem at the site; send NAME.cert.pem to the run's coordinator.
    """
    from secured_bio.privacy.smpc.links import create_identity

    ident = create_identity(name, out_dir, days=days)
    click.echo(f"private key: {ident.key} (keep it here)\ncertificate: {ident.cert} "
               "(send it to the coordinator)")


@smpc.command("roster")
@click.option("--party", "parties", multiple=True, required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="A site's certificate; repeat in rank order (the first writes the outputs).")
@click.option("--relay", "relay", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The relay's certificate.")
@click.option("--session", help="A label for the run (default: random).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Roster file to write (JSON).")
def roster(parties: tuple[Path, ...], relay: Path, session: str | None, out: Path) -> None:
    """Write the roster of a run: who may join, in rank order, and the relay to trust."""
    from secured_bio.privacy.smpc.links import read_roster, write_roster

    write_roster(out, list(parties), relay, session=session)
    r = read_roster(out)
    click.echo(f"roster {out}: session {r.session}; parties "
               + ", ".join(f"{i}={p.name}" for i, p in enumerate(r.parties))
               + f"; relay {r.relay.name}")


@smpc.command("relay")
@click.option("--roster", "roster_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The run's roster.")
@click.option("--key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The relay's private key.")
@click.option("--cert", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The relay's certificate (the roster's relay).")
@click.option("--listen", default="0.0.0.0:7443", show_default=True, metavar="HOST:PORT",
              help="Address to listen on.")
@click.option("--serve", is_flag=True,
              help="Keep serving after the session ends (default: exit when every party left).")
def relay(roster_path: Path, key: Path, cert: Path, listen: str, serve: bool) -> None:
    """Forward the sealed messages of one run between its sites (mutual TLS, roster only).

    The relay cannot read or alter the messages undetected; it sees who talks to whom and
    message sizes.  Connections whose certificate is not on the roster are refused.
    """
    from secured_bio.privacy.smpc.links import run_relay

    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError("invalid listen address", where="--listen", expected="HOST:PORT",
                          got=repr(listen))
    # Who joined, who was refused, who left: the relay's own log, on stderr.
    relay_log = logging.getLogger("secured_bio.privacy.smpc.links")
    relay_log.setLevel(logging.INFO)
    if not relay_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        relay_log.addHandler(handler)
        relay_log.propagate = False
    run_relay(roster_path, key=key, cert=cert, host=host or "0.0.0.0", port=int(port),
              once=not serve,
              ready=lambda p: click.echo(f"relay listening on {host or '0.0.0.0'}:{p}",
                                         err=True))
