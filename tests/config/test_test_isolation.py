from django.core.cache import cache


def test_cache_keys_of_tests_use_their_own_prefix():
    assert cache.key_prefix.startswith("billing-test-")
