-- POST with a fresh Idempotency-Key on every request: claim + forward + complete.
local prefix = string.format("%d-%d", os.time(), math.random(1, 1000000000))
local counter = 0
local body = '{"amount":2599,"currency":"eur","customer":"cus_8e03978e40d5","description":"order 1042"}'
request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/payments", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer sk_test_bench",
    ["Idempotency-Key"] = '"' .. prefix .. "-" .. counter .. '"',
  }, body)
end
