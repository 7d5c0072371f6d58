"""Operations tools: consumer-group offsets and replay of the stream stage.

Sits above the services: it may import them; they never import it.
"""
