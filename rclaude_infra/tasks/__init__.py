"""Tasks: the provider-neutral handle (:mod:`.model`) and the providers that run them."""
