from routing.providers.base import Adapter


class OpenrouterAdapter(Adapter):
    kind = "openrouter"
    label = "OpenRouter"
    default_base_url = "https://openrouter.ai/api"
    env_var = "OPENROUTER_API_KEY"
