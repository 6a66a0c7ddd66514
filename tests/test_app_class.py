"""IndexApp keeps Flask's ensure_sync answer per function (index/app_class.py)."""
from index.app_class import IndexApp


def test_each_function_is_checked_once_and_calls_go_through():
    app = IndexApp(__name__)
    seen = []

    @app.before_request
    def hook():
        seen.append("before")

    @app.get("/")
    def view():
        return "ok"

    client = app.test_client()
    assert client.get("/").data == b"ok" and client.get("/").data == b"ok"
    assert seen == ["before", "before"]
    assert app.ensure_sync(hook) is app.ensure_sync(hook)
    assert hook in app._synced and view in app._synced


def test_a_coroutine_function_still_gets_flasks_wrapper():
    app = IndexApp(__name__)

    async def coroutine():
        return "ok"

    try:
        wrapped = app.ensure_sync(coroutine)
    except RuntimeError as exc:  # Flask without its "async" extra says so, as plain Flask does
        assert "async" in str(exc)
    else:
        assert wrapped is not coroutine  # Flask's async_to_sync wrapper, never the coroutine itself
