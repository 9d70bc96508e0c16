from routing.providers.base import Adapter


class GeminiAdapter(Adapter):
    kind = "gemini"
    label = "Google Gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    env_var = "GEMINI_API_KEY"
    request_format = 'gemini-generate-content'
    response_format = 'gemini-generate-content'
    auth_method = 'x-goog-api-key'
    chat_path = '/v1beta/models/{model}:generateContent'
    models_path = '/v1beta/models'
