from routing.providers.base import Adapter


class OpenaiCompatibleAdapter(Adapter):
    kind = "openai_compatible"
    label = "OpenAI-compatible server"
    default_base_url = "http://localhost:8000"
    env_var = "OPENAI_COMPATIBLE_URL"
