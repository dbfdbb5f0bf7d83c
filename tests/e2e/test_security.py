"""Must show 5 and 8: mutual TLS refuses strangers, the firewall admits only this client, the
token is nowhere on the nodes, and the dashboard is reachable only through the SSH tunnel;
issue 7: nothing of a worker listens on its public side, and the dashboard is Dask's."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
from distributed import Client
from distributed.comm import connect
from distributed.security import Security

from scherbelberg import HetznerCluster
from scherbelberg.cluster import ssh
from scherbelberg.cluster.tls import ClusterCA, write_tls_files
from tests.conftest import must, public_ip
from tests.e2e.conftest import Target, name_of
from tests.machines import tcp_probe


def test_strangers_are_refused_and_the_token_stays_home(target: Target, tmp_path: Path) -> None:
    if not target.local:
        pytest.skip("needs the local Hetzner's admin API and outside host")
    assert target.control is not None
    with HetznerCluster(n_workers=1, **target.cluster_kwargs) as cluster:
        address = cluster.scheduler_address
        host, port = address.removeprefix("tls://").split(":")

        # the cluster's own client works
        with Client(cluster) as client:
            assert client.submit(sum, [1, 2]).result() == 3

        # plain TCP: the scheduler speaks only TLS
        async def plain() -> None:
            comm = await connect(f"tcp://{host}:{port}", timeout=5)
            await comm.write({"op": "identity"})
            await comm.read()

        with pytest.raises((OSError, TimeoutError, asyncio.TimeoutError)):
            asyncio.run(plain())

        # a client certificate from another CA is refused
        stranger = ClusterCA.generate("stranger")
        files = write_tls_files(
            tmp_path / "stranger", stranger.cert_pem, stranger.issue("client", "x")
        )
        wrong = Security(
            tls_ca_file=str(files.ca_file),
            tls_client_cert=str(files.cert_file),
            tls_client_key=str(files.key_file),
            require_encryption=True,
        )

        async def wrong_ca() -> None:
            comm = await connect(address, timeout=5, **wrong.get_connection_args("client"))
            await comm.write({"op": "identity"})
            await comm.read()

        with pytest.raises((OSError, ssl.SSLError, TimeoutError, asyncio.TimeoutError)):
            asyncio.run(wrong_ca())

        # from another host on the internet the scheduler port and SSH time out
        outside = target.control.info()["outside_netns"]
        assert tcp_probe(host, int(port), timeout=3, netns=outside) == "timeout"
        assert tcp_probe(host, 22, timeout=3, netns=outside) == "timeout"

        # the token is in no user_data, on no node's disk, in no state file
        token = target.token
        servers = target.hcloud().servers.get_all()
        for server in servers:
            user_data = target.control.server(must(server.id, "server id"))["user_data"]
            assert user_data and token not in user_data
        state_dir = Path(os.environ["SCHERBELBERG_STATE_DIR"])
        for path in state_dir.rglob("*"):
            if path.is_file():
                assert token not in path.read_text(errors="replace"), path

        async def grep_nodes() -> list[str]:
            found = []
            for server in servers:
                conn = await ssh.connect(
                    public_ip(server),
                    cluster.ssh_private_key,
                    cluster.state.host_keys()[server.name],
                    deadline=60,
                )
                async with conn:
                    _, out, _ = await ssh.run(
                        conn,
                        f"grep -rlsF {token} /etc /opt /root /var /home /tmp /run "
                        "; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' "
                        f"| grep -cF {token} || true",
                        timeout=120,
                    )
                found += [line for line in out.splitlines() if line.strip() not in ("", "0")]
            return found

        assert asyncio.run(grep_nodes()) == []

        # nothing of Dask's on a worker listens on its public address or on every address
        # (issue 7): only sshd faces the public side, for the firewall to guard
        worker = next(s for s in servers if "-worker-" in name_of(s, "server"))
        private_ip = must(worker.private_net, "private network of the worker")[0].ip

        async def listening() -> list[str]:
            conn = await ssh.connect(
                public_ip(worker),
                cluster.ssh_private_key,
                cluster.state.host_keys()[worker.name],
                deadline=60,
            )
            async with conn:
                _, out, _ = await ssh.run(conn, "ss -Hltnp", timeout=30)
            return out.splitlines()

        sockets = asyncio.run(listening())
        dask_sockets = [line for line in sockets if "python" in line or "dask" in line]
        # the worker's and the nanny's comms and the worker's HTTP server (health, metrics)
        assert len(dask_sockets) >= 3, sockets
        for line in dask_sockets:
            local = line.split()[3]
            assert local.startswith(f"{private_ip}:"), line
        for line in sockets:
            local = line.split()[3]
            if local.startswith(("127.", "[::1]")) or "sshd" in line:
                continue
            assert local.startswith(f"{private_ip}:"), line


def test_dashboard_only_through_the_tunnel(target: Target) -> None:
    """With default settings the link shows Dask's dashboard (issue 7, must show 1); also the
    asynchronous form users write: `async with HetznerCluster(asynchronous=True)`."""

    async def check() -> str:
        async with HetznerCluster(
            n_workers=1, asynchronous=True, **target.cluster_kwargs
        ) as cluster:
            link = cluster.dashboard_link
            assert link.startswith("http://127.0.0.1:")
            async with aiohttp.ClientSession() as http, http.get(link) as response:
                page = await response.text()
            # Dask's own status page (a bokeh document), not distributed's "Dask needs
            # bokeh" placeholder, which is also served with status 200
            assert response.status == 200
            assert "needs bokeh" not in page, page[:500]
            assert "<title>Dask Diagnostic UI</title>" in page, page[:500]
            assert "bokeh.min.js" in page  # the status plots are a bokeh document
            assert '<a href="status">Status</a>' in page  # the navigation of Dask's pages
            host = cluster.scheduler_address.removeprefix("tls://").split(":")[0]
            assert await asyncio.to_thread(tcp_probe, host, 8787, 3) == "timeout"
            return str(cluster.name)

    asyncio.run(check())
    assert target.leftovers() == []
