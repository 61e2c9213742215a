// k6: POST /v1/infer with a digit image at 32 virtual users for 30 s (the A/B image service's load test).
//   docker run --rm -i --network host grafana/k6 run - < load/k6/infer.js
//   docker run --rm -i --network host -e API_KEY=$KEY grafana/k6 run --out json=results/infer.json - < load/k6/infer.js
// The image is models/digits/digit3_0.png, inline (a script read from stdin cannot open files);
// a test keeps it equal to the file. make load-test runs the same scenario with locust.
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  vus: Number(__ENV.VUS || 32),
  duration: __ENV.DURATION || '30s',
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(99)<100'],
  },
};

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8000';
const API_KEY = __ENV.API_KEY || 'demo-api-key-123';
const DIGIT_3_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAPklEQVR4nGNgYGg4v9+AgYGBIeF9Qf9+BggoWA+hHd4bMDAwMTAwxAvEM8CEChiYGBjWK1yA8Bv+/9/PwAAAGQYPF+cFiRQAAAAASUVORK5CYII=';
const BODY = JSON.stringify({ image_b64: DIGIT_3_PNG });

export default function () {
  const response = http.post(`${BASE_URL}/v1/infer`, BODY, {
    headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY },
  });
  check(response, {
    'status is 200': (r) => r.status === 200,
    'classified as 3': (r) => r.json('label') === '3',
  });
}
