from routing.providers.base import Adapter


class OllamaAdapter(Adapter):
    kind = "ollama"
    label = "Ollama"
    default_base_url = "http://localhost:11434"
    env_var = "OLLAMA_URL"
    request_format = 'ollama-chat'
    response_format = 'ollama-chat'
    auth_method = 'none'
    chat_path = '/api/chat'
    models_path = '/api/tags'
    always_local = True
