-- wrk request script for bench.proxy: one POST, repeated, to the URL wrk is given (the
-- scenario's path: /v1/chat/completions or /v1/responses; wrk.path is left as wrk sets it).
-- The body and the Authorization header come from the environment so the Python code
-- stays the single source of truth for what is sent (BENCH_BODY, BENCH_AUTH).
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
if body == nil or auth == nil then
  error("chat.lua: set BENCH_BODY and BENCH_AUTH (bench.load does)")
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = auth
