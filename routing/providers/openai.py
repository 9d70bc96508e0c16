from routing.providers.base import Adapter


class OpenaiAdapter(Adapter):
    kind = "openai"
    label = "OpenAI"
    default_base_url = "https://api.openai.com"
    env_var = "OPENAI_API_KEY"
