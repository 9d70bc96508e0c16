from routing.providers.base import Adapter


class MistralAdapter(Adapter):
    kind = "mistral"
    label = "Mistral"
    default_base_url = "https://api.mistral.ai"
    env_var = "MISTRAL_API_KEY"
