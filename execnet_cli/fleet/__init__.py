"""Running one job on many hosts: ``events`` and ``results`` (values), ``runner``, ``jobs``.

This file imports nothing, so that ``fleet.events`` and ``fleet.results`` can be imported
(by the renderers) without loading the runner and, through it, gateways and transports.
"""
