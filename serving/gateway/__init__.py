"""The gateway: Fawn's LLM budget in front of one or more vLLM engines, for every client at once.

app.py      the OpenAI-compatible HTTP face: checks, counts, admits and proxies calls
engines.py  each engine's budget, health and client; admission onto one of them
policy.py   which engine an admitted call goes to
metrics.py  Prometheus metrics per engine and per class
"""

from serving.gateway.app import create_gateway_app, gateway_server
from serving.gateway.engines import DEFAULT_ENGINE_BUDGET, EnginePool
from serving.gateway.policy import EnginePolicy, MostFreeRoom
from serving.gateway.thread import GatewayThread

__all__ = [
    "DEFAULT_ENGINE_BUDGET",
    "EnginePolicy",
    "EnginePool",
    "GatewayThread",
    "MostFreeRoom",
    "create_gateway_app",
    "gateway_server",
]
