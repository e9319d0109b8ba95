"""The balancer stage: every request is assigned an egress node.

Selection is a fixed pipeline of small policies, in this order:
health (active checks, slow start) -> circuit breakers (per node and per
(node, domain), fed by real outcomes and ban detection) -> geo
(prefer the request's region, then a fallback order) -> affinity (sessions
stick to a node, consistent hashing with bounded loads) -> strategy
(round-robin, weighted, least-conn, p2c-ewma).
"""
