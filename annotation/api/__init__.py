"""The researchers' REST API: views, serializers, permissions, throttling and URLs."""
