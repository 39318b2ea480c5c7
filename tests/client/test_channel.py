"""ClientConfig validation, the service config, and mTLS against the real gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.app import Gateway
from essc_gateway.config import BankConfig, TlsConfig
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.testing import FakeClock
from essc_gateway_client import ClientConfig, GatewayClient, Unauthenticated, service_config
from essc_gateway_client.channel import channel_options, is_loopback
from tests.certs import make_pki
from tests.conftest import make_config
from tests.gateway.flows import adult, identity, live_sample


def _retried(config: str) -> dict[str, set[str]]:
    by_service: dict[str, set[str]] = {}
    for method_config in json.loads(config).get("methodConfig", []):
        assert method_config["retryPolicy"] == {
            "maxAttempts": 3,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        for name in method_config["name"]:
            by_service.setdefault(name["service"], set()).add(name["method"])
    return by_service


def test_only_reads_and_keyed_writes_are_retried() -> None:
    retried = _retried(service_config())
    assert retried["essc.gateway.v1.GatewayService"] == {
        "Verify",
        "Query",
        "GetIssueStatus",
        "Issue",
        "ChangePassword",
        "Terminate",
    }
    operator = retried["essc.gateway.v1.OperatorService"]
    assert "VerifyLedger" in operator
    assert not operator & {"AnnounceMaintenance", "AmendMaintenance", "DeclareIncident"}
    assert _retried(service_config(retries=False)) == {}


def test_channel_options_enable_retries_and_carry_the_service_config() -> None:
    options = dict(channel_options(ClientConfig("127.0.0.1:1", keepalive_time=30)))
    assert options["grpc.enable_retries"] == 1
    assert options["grpc.service_config"] == service_config()
    assert options["grpc.keepalive_time_ms"] == 30_000
    assert "grpc.ssl_target_name_override" not in options
    off = dict(channel_options(ClientConfig("127.0.0.1:1", retries=False)))
    assert off["grpc.enable_retries"] == 0


@pytest.mark.parametrize(
    ("target", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("dns:///localhost:50051", True),
        ("ipv4:127.0.0.2:1", True),
        ("unix:/run/gw.sock", True),
        ("10.0.0.5:50051", False),
        ("gw.bank.example:443", False),
        ("dns:///gw.bank.example:443", False),
        ("[2001:db8::1]:443", False),
    ],
)
def test_loopback_targets(target: str, loopback: bool) -> None:
    assert is_loopback(target) is loopback


def test_a_token_is_not_sent_in_plaintext_to_another_host_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plaintext"):
        ClientConfig("gw.bank.example:443", token="t")
    ClientConfig("gw.bank.example:443", token="t", allow_insecure_token=True)
    ClientConfig("gw.bank.example:443", token="t", ca_file=tmp_path / "ca.pem")
    ClientConfig("127.0.0.1:50051", token="t")


@pytest.mark.parametrize(
    "overrides",
    [
        {"target": ""},
        {"cert_file": Path("bank.pem")},
        {"key_file": Path("bank.key")},
        {"default_timeout": 0},
        {"timeouts": {"Verify": -1.0}},
        {"timeouts": {"Verfiy": 1.0}},
        {"keepalive_time": 0},
    ],
)
def test_invalid_configs_are_refused(overrides: dict[str, object]) -> None:
    settings: dict[str, object] = {"target": "127.0.0.1:1", **overrides}
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        ClientConfig(**settings)  # type: ignore[arg-type]


def test_deadlines_per_rpc_fall_back_to_the_default() -> None:
    config = ClientConfig("127.0.0.1:1", default_timeout=3.0, timeouts={"Issue": 20.0})
    assert config.timeout_for("Issue") == 20.0
    assert config.timeout_for("Verify") == 3.0
    with pytest.raises(TypeError):
        config.timeouts["Verify"] = 1.0  # type: ignore[index]


async def test_mtls_identifies_the_bank_by_its_client_certificate(
    platform: SimulatedPlatform, population: Population, clock: FakeClock, tmp_path: Path
) -> None:
    ca, server, clients = make_pki(tmp_path, ("bank-c-client", "stranger"))
    config = make_config(
        tmp_path / "tls.db",
        banks=(BankConfig("bank-c", certificate_subject="bank-c-client"),),
        tls=TlsConfig(cert_file=server.cert, key_file=server.key, client_ca_file=ca),
    )
    gateway = Gateway(config, platform.address, clock)
    port = await gateway.start()
    person = adult(population, clock.now().date())
    request = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )

    def client_config(name: str) -> ClientConfig:
        return ClientConfig(
            f"127.0.0.1:{port}",
            ca_file=ca,
            cert_file=clients[name].cert,
            key_file=clients[name].key,
            server_name="localhost",
        )

    try:
        async with GatewayClient(client_config("bank-c-client")) as bank:
            assert (await bank.verify(request)).verified
        async with GatewayClient(client_config("stranger")) as stranger:
            with pytest.raises(Unauthenticated) as raised:
                await stranger.verify(request)
            assert raised.value.reason == "BANK_UNAUTHENTICATED"
    finally:
        await gateway.stop(0)
