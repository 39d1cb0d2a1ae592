"""OpenAI's chat completions API over the service's own turn pipeline: `views.py` (the endpoints), `serializers.py`
(the request and the response shapes), `wire.py` (the completion, its stream chunks and the error body) and
`urls.py` (the routes under `/v1/` and `/openai/v1/`)."""
