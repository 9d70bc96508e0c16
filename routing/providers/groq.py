from routing.providers.base import Adapter


class GroqAdapter(Adapter):
    kind = "groq"
    label = "Groq"
    default_base_url = "https://api.groq.com/openai"
    env_var = "GROQ_API_KEY"
