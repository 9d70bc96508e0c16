from routing.providers.base import Adapter


class DeepseekAdapter(Adapter):
    kind = "deepseek"
    label = "DeepSeek"
    default_base_url = "https://api.deepseek.com"
    env_var = "DEEPSEEK_API_KEY"
    chat_path = '/chat/completions'
    models_path = '/models'
