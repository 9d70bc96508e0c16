from routing.providers.base import Adapter


class HuggingfaceAdapter(Adapter):
    kind = "huggingface"
    label = "Hugging Face"
    default_base_url = "https://router.huggingface.co"
    env_var = "HUGGINGFACE_API_TOKEN"
