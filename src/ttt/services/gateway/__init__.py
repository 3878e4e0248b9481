"""The order gateway (portfolio.md §11, §12): the only component that places orders on a venue."""

from ttt.services.gateway.client import (
    GatewayReply,
    HttpGatewayClient,
    InProcessGatewayClient,
)
from ttt.services.gateway.model import GatewayError, OrderPolicy, PreSendError
from ttt.services.gateway.service import Answer, GatewayConfig, GatewayService

__all__ = [
    "Answer",
    "GatewayConfig",
    "GatewayError",
    "GatewayReply",
    "GatewayService",
    "HttpGatewayClient",
    "InProcessGatewayClient",
    "OrderPolicy",
    "PreSendError",
]
