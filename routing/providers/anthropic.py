from routing.providers.base import Adapter


class AnthropicAdapter(Adapter):
    kind = "anthropic"
    label = "Anthropic"
    default_base_url = "https://api.anthropic.com"
    env_var = "ANTHROPIC_API_KEY"
    request_format = 'anthropic-messages'
    response_format = 'anthropic-messages'
    auth_method = 'x-api-key'
    chat_path = '/v1/messages'
