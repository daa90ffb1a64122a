from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The staff console: an interface that composes the control plane (tenants, keys, quotas)
    and the data plane (documents, queries, evaluation, the playground). Both planes are below
    it; neither imports it."""

    name = "console"
