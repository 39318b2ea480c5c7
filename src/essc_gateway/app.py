"""Composition root: builds the object graph from a config, serves it, shuts it down."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from essc.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from essc_gateway.clock import Clock, SystemClock
from essc_gateway.config import GatewayConfig
from essc_gateway.crypto import FieldCipher, LookupHasher, TokenSealer
from essc_gateway.service.authentication import AuthenticationService
from essc_gateway.service.cards import CardService
from essc_gateway.service.holders import Holders
from essc_gateway.service.issuance import IssuanceService
from essc_gateway.service.tokens import TokenService
from essc_gateway.service.vault import Vault
from essc_gateway.service.verification import VerificationService
from essc_gateway.store.base import Store
from essc_gateway.store.sqlite import SqliteStore
from essc_gateway.transport.banks import BankAuthenticator
from essc_gateway.transport.interceptor import GatewayInterceptor
from essc_gateway.transport.servicer import GatewayServicer
from essc_gateway.upstream.grpc_platform import GrpcPlatform

log = logging.getLogger("essc_gateway")
GATEWAY_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name


class Gateway:
    """The gateway server. `await start()`, then `port`; `await stop()` drains and closes."""

    def __init__(
        self, config: GatewayConfig, platform_address: str, clock: Clock | None = None
    ) -> None:
        self._config = config
        self._platform_address = platform_address
        self._clock = clock or SystemClock()
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._health = HealthServicer()
        self._store: Store | None = None
        self._platform: GrpcPlatform | None = None
        self.port = 0
        self.health_port: int | None = None

    async def start(self) -> int:
        config, clock = self._config, self._clock
        self._store = store = await SqliteStore.open(config.database, config.synchronous)
        channel = grpc.aio.insecure_channel(self._platform_address)
        self._platform = platform = GrpcPlatform(channel, clock, config.platform_timeout)

        vault = Vault(FieldCipher(config.keys.data), LookupHasher(config.keys.lookup))
        tokens = TokenService(TokenSealer(config.keys.tokens), clock, config.settings)
        holders = Holders(store, vault, clock, config.settings)
        servicer = GatewayServicer(
            verification=VerificationService(platform, tokens, vault, clock),
            issuance=IssuanceService(platform, store, tokens, vault, clock, config.settings),
            authentication=AuthenticationService(
                platform, holders, tokens, vault, config.auth_policy(), clock
            ),
            cards=CardService(platform, store, tokens, vault),
            clock=clock,
        )
        authenticator = BankAuthenticator(
            token_digests={b.token_sha256: b.bank_id for b in config.banks if b.token_sha256},
            certificate_subjects={
                b.certificate_subject: b.bank_id for b in config.banks if b.certificate_subject
            },
        )
        server = grpc.aio.server(interceptors=[GatewayInterceptor(authenticator, clock)])
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)
        reflection.enable_server_reflection(
            (
                GATEWAY_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        address = f"{config.host}:{config.port}"
        if config.tls is None:
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            self.port = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(config.tls.key_file.read_bytes(), config.tls.cert_file.read_bytes())],
                root_certificates=config.tls.client_ca_file.read_bytes(),
                require_client_auth=True,
            )
            self.port = server.add_secure_port(address, credentials)
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
            self.health_port = self._health_server.add_insecure_port(
                f"{config.host}:{config.health_port or 0}"
            )
            await self._health_server.start()
        self._server = server
        await server.start()
        for service in ("", GATEWAY_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("gateway listening on %s:%d", config.host, self.port)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stops taking calls, lets running ones finish within `grace`, closes resources."""
        await self._health.enter_graceful_shutdown()
        grace = self._config.shutdown_grace if grace is None else grace
        if self._server is not None:
            await self._server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)
        if self._platform is not None:
            await self._platform.close()
        if self._store is not None:
            await self._store.close()
