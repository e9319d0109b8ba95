"""Settings: typed records with defaults in code, read from layers
(:mod:`._settings`), and the node configuration they may carry
(:mod:`._nodes`). Below the balancer: it imports no stage.
"""

from ._nodes import NODE_KINDS as NODE_KINDS
from ._nodes import NodeKind as NodeKind
from ._nodes import NodeKindInfo as NodeKindInfo
from ._nodes import NodeSpec as NodeSpec
from ._nodes import default_mesh as default_mesh
from ._nodes import load_nodes_file as load_nodes_file
from ._nodes import load_settings_nodes as load_settings_nodes
from ._nodes import node_token as node_token
from ._nodes import validate_nodes as validate_nodes
from ._scrapy import SCRAPY_SETTINGS as SCRAPY_SETTINGS
from ._scrapy import scrapy_hint as scrapy_hint
from ._settings import DEDUPES as DEDUPES
from ._settings import LOG_LEVELS as LOG_LEVELS
from ._settings import STRATEGIES as STRATEGIES
from ._settings import BackendSettings as BackendSettings
from ._settings import BalancerSettings as BalancerSettings
from ._settings import BreakerSettings as BreakerSettings
from ._settings import Dedupe as Dedupe
from ._settings import HealthSettings as HealthSettings
from ._settings import LogLevel as LogLevel
from ._settings import MetricsSettings as MetricsSettings
from ._settings import RobotsSettings as RobotsSettings
from ._settings import Settings as Settings
from ._settings import Strategy as Strategy
from ._settings import ThrottleSettings as ThrottleSettings
from ._settings import Timeouts as Timeouts
from ._settings import _known_keys as _known_keys
from ._settings import fetch_options as fetch_options
from ._settings import load_settings as load_settings
from ._settings import parse_override as parse_override
from ._settings import read_settings_file as read_settings_file

__all__ = [
    "DEDUPES",
    "LOG_LEVELS",
    "NODE_KINDS",
    "SCRAPY_SETTINGS",
    "STRATEGIES",
    "BackendSettings",
    "BalancerSettings",
    "BreakerSettings",
    "Dedupe",
    "HealthSettings",
    "LogLevel",
    "MetricsSettings",
    "NodeKind",
    "NodeKindInfo",
    "NodeSpec",
    "RobotsSettings",
    "Settings",
    "Strategy",
    "ThrottleSettings",
    "Timeouts",
    "default_mesh",
    "fetch_options",
    "load_nodes_file",
    "load_settings",
    "load_settings_nodes",
    "node_token",
    "parse_override",
    "read_settings_file",
    "scrapy_hint",
    "validate_nodes",
]
