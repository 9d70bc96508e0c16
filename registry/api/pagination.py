from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


def positive_int(request, name: str, maximum: int | None = None) -> int | None:
    """The query parameter `name` as a whole number from 1 to `maximum`, None when absent; a 400
    naming it otherwise (DRF's paginator ignores a bad page size and calls a bad page a 404)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1 or (maximum is not None and int(raw) > maximum):
        limit = f" up to {maximum}" if maximum is not None else ""
        raise ValidationError({name: [f"A whole number from 1{limit}, not '{raw[:40]}'."]})
    return int(raw)


class Pagination(PageNumberPagination):
    """`page` (from 1; past the last page is a 404) and `pageSize` (1 to 500, default 50)."""

    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        positive_int(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        return positive_int(request, self.page_size_query_param, self.max_page_size) or self.page_size
