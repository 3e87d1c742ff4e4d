def test_imports():
    import dok.core
    assert dok.core.__doc__
