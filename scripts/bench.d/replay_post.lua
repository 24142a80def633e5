-- The same POST and key on every request: after the first, each is a replay from the store.
local key = string.format('"replay-%d-%d"', os.time(), math.random(1, 1000000000))
local body = '{"amount":2599,"currency":"eur","customer":"cus_8e03978e40d5","description":"order 1042"}'
request = function()
  return wrk.format("POST", "/v1/payments", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer sk_test_bench",
    ["Idempotency-Key"] = key,
  }, body)
end
