"""Running one job on many hosts: ``events`` and ``results`` (values), ``runner``, ``jobs``;
``batches`` (rolling, failure budget), ``lastrun`` (outcome sets kept between runs),
``diffing`` (output classes), ``retries`` (which connection errors to retry, the backoff).

This file imports nothing, so that ``fleet.events`` and ``fleet.results`` can be imported
(by the renderers) without loading the runner and, through it, gateways and transports.
"""
