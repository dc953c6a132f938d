// POST /v1/responses (docs/openai.md): not yet implemented.
export default async function responseRoutes() {}
