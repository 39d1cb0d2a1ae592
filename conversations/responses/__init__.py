"""OpenAI's Responses API (`/v1/responses`) on the conversation store: a chain of responses by
`previous_response_id` is one stored session, answered by the same turn pipeline as every chat path."""
