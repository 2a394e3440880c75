// The official openai Node SDK against a gateway's Responses API: one plain call, one stream.
// Usage: node responses.mjs BASE_URL API_KEY MODEL   (or OPENAI_BASE_URL, OPENAI_API_KEY, MODEL)
// Prints one JSON object: what the SDK parsed, for tests/server/endpoints/test_responses_node.py.
// An SDK error is printed as {"error": ...} with exit status 1.
import OpenAI from "openai";

const [baseURL, apiKey, model] = [
  process.argv[2] ?? process.env.OPENAI_BASE_URL,
  process.argv[3] ?? process.env.OPENAI_API_KEY,
  process.argv[4] ?? process.env.MODEL,
];
if (!baseURL || !apiKey || !model) {
  console.error("usage: node responses.mjs BASE_URL API_KEY MODEL");
  process.exit(2);
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const input = "Say hello to the gateway.";

function summary(response) {
  return {
    id: response.id,
    object: response.object,
    status: response.status,
    model: response.model,
    output_text: response.output_text,
    output_types: response.output.map((item) => item.type),
    usage: response.usage,
  };
}

try {
  const plain = await client.responses.create({ model, input });

  const stream = await client.responses.create({ model, input, stream: true });
  const events = [];
  let deltas = "";
  let final = null;
  for await (const event of stream) {
    events.push({ type: event.type, sequence_number: event.sequence_number });
    if (event.type === "response.output_text.delta") deltas += event.delta;
    if (event.type === "response.completed") final = event.response;
  }

  console.log(
    JSON.stringify({
      plain: summary(plain),
      stream: {
        events,
        deltas,
        // The SDK adds output_text to the Response objects it returns, not to those inside
        // events: rebuild it the same way from the completed response's message items.
        completed: final && {
          ...summary(final),
          output_text: final.output
            .filter((item) => item.type === "message")
            .flatMap((item) => item.content)
            .filter((part) => part.type === "output_text")
            .map((part) => part.text)
            .join(""),
        },
      },
    }),
  );
} catch (error) {
  console.log(
    JSON.stringify({
      error: {
        name: error?.constructor?.name,
        status: error?.status ?? null,
        message: String(error?.message ?? error),
      },
    }),
  );
  process.exit(1);
}
