"""Fixtures shared by every test folder."""

import socket
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a launcher's rendezvous."""
    return _free_port()


@pytest.fixture
def torchrun():
    """Command prefix that starts ``nproc`` local processes (torchrun on a free port); the
    trainers join them with gloo when there is no GPU."""

    def prefix(nproc: int = 2) -> list[str]:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
        ]

    return prefix


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never write to the user's ``~/.cache/sftvsrl`` (precision decisions, map caches)."""
    import os

    old = os.environ.get("SFTVSRL_CACHE")
    os.environ["SFTVSRL_CACHE"] = str(tmp_path_factory.mktemp("sftvsrl-cache"))
    yield
    if old is None:
        os.environ.pop("SFTVSRL_CACHE", None)
    else:
        os.environ["SFTVSRL_CACHE"] = old
