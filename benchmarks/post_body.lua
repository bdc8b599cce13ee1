-- POST one fixed body with every request.
-- Usage: wrk ... -s post_body.lua URL -- BODY_FILE CONTENT_TYPE [HEADER VALUE]...
-- init runs in each wrk thread before wrk builds its request, so the body set here is sent.
function init(args)
   local file = assert(io.open(args[1], "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   if args[2] ~= "" then
      wrk.headers["Content-Type"] = args[2]
   end
   -- Further (name, value) pairs become headers, e.g. Inference-Header-Content-Length.
   for index = 3, #args - 1, 2 do
      wrk.headers[args[index]] = args[index + 1]
   end
end
