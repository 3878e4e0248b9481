"""`3t gateway` end to end: a real process serving the app from configuration (the command is mounted on a
throwaway Typer app here because registering it in `3t` is the lead's call)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.gateway.conftest import TOKEN, auth, order_body
from tests.support import free_port

LAUNCH = (
    "import sys, typer; from ttt.cli.gateway_cmd import gateway; "
    "app = typer.Typer(); app.command()(gateway); app(sys.argv[1:])"
)


def test_gateway_command_serves_health_auth_and_orders(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "config.yml").write_text(
        f'database:\n  url: "sqlite:///{tmp_path / "ttt.sqlite"}"\n'
        f"gateway:\n  port: {port}\n"
        f'observer:\n  persist_path: "{tmp_path / "obs.json"}"\n'
    )
    (tmp_path / "secrets.yml").write_text(f'gateway:\n  token: "{TOKEN}"\n')
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TTT_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(TTT_CONFIG=str(tmp_path / "config.yml"), TTT_SECRETS=str(tmp_path / "secrets.yml"))
    log_path = tmp_path / "gateway.log"
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH], cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"gateway did not start:\n{log_path.read_text()}") from None
                time.sleep(0.2)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert httpx.post(f"{url}/v1/orders", json=order_body()).status_code == 401
        # No price feed runs in this process and the paper engine has seen no price: held, not guessed.
        r = httpx.post(f"{url}/v1/orders", json=order_body(), headers=auth())
        assert r.status_code == 503 and r.json()["error"] == "price_unavailable"
        listed = httpx.get(f"{url}/v1/orders", headers=auth()).json()
        assert [o["status"] for o in listed["orders"]] == ["NOT_SENT"]
        assert "ttt_gateway_requests_total" in httpx.get(f"{url}/metrics").text
    finally:
        proc.terminate()
        proc.wait(20)
        log_file.close()


def test_gateway_command_refuses_a_short_token(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(f'database:\n  url: "sqlite:///{tmp_path / "ttt.sqlite"}"\n')
    (tmp_path / "secrets.yml").write_text('gateway:\n  token: "short"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_")}
    env.update(TTT_CONFIG=str(tmp_path / "config.yml"), TTT_SECRETS=str(tmp_path / "secrets.yml"))
    launch = (
        "import sys, typer; from ttt.cli.gateway_cmd import gateway; import ttt.cli as cli; "
        "cli.app.command('gateway')(gateway); sys.exit(cli.main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", launch, "gateway"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "secrets.gateway.token" in done.stderr
