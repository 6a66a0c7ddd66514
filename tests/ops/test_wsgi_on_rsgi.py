"""The body deadline of the RSGI bridge (the live behaviour is in tests/registry/test_slow_clients.py)."""
from index.ops.wsgi_on_rsgi import BodyDeadline


def test_a_body_gets_the_grace_then_must_keep_the_minimum_rate():
    deadline = BodyDeadline(min_rate=500, grace=20.0)
    assert deadline.next_timeout() == 20.0
    deadline.record(waited=19.0, received=0)
    assert deadline.next_timeout() == 1.0          # the grace is nearly spent
    deadline.record(waited=1.0, received=5_000)    # 5,000 bytes buy 10 s more
    assert deadline.next_timeout() == 10.0
    deadline.record(waited=10.0, received=0)
    assert deadline.next_timeout() == 0.0          # below 500 B/s on average: cut


def test_no_single_wait_outlasts_the_grace_however_much_arrived_before():
    deadline = BodyDeadline(min_rate=500, grace=20.0)
    deadline.record(waited=1.0, received=1 << 30)  # a fast client that then stops entirely
    assert deadline.next_timeout() == 20.0


def test_only_time_spent_waiting_for_the_client_counts():
    deadline = BodyDeadline(min_rate=500, grace=5.0)
    # The app spent minutes writing (not recorded): the client's allowance is untouched.
    deadline.record(waited=2.0, received=1000)
    assert deadline.next_timeout() == 5.0


def test_what_an_app_writes_before_returning_comes_ahead_of_its_iterable():
    """PEP 3333's write() callable (Flask never uses it; other WSGI apps may)."""
    from index.ops.wsgi_on_rsgi import WsgiOnRsgi

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"first, ")
        return [b"then ", b"returned"]

    bridge = WsgiOnRsgi(app, threads=1, min_body_rate=1, body_grace=1.0)
    status, headers, body, rest = bridge._call_app({"REQUEST_METHOD": "GET"})
    assert (status, headers, body, rest) == (200, [("Content-Type", "text/plain")],
                                             b"written first, then returned", None)
