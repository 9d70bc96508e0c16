from routing.providers.base import Adapter


class CerebrasAdapter(Adapter):
    kind = "cerebras"
    label = "Cerebras"
    default_base_url = "https://api.cerebras.ai"
    env_var = "CEREBRAS_API_KEY"
