from routing.providers.base import Adapter


class TogetherAdapter(Adapter):
    kind = "together"
    label = "Together AI"
    default_base_url = "https://api.together.xyz"
    env_var = "TOGETHER_API_KEY"
