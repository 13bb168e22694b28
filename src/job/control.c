/* SPDX-License-Identifier: GPL-3.0-or-later */
/* control.c: the client of virtback serve's control API (PUT, GET and
 * DELETE /tickets/ID over its unix socket), on libcurl. */
#include <string.h>

#include <curl/curl.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/text.h"
#include "job/internal.h"

struct reply {
  char text[4096];             /* a ticket's JSON, or an error line */
  size_t len;
};

/* Keep the start of serve's answer (a longer one is cut: no JSON then). */
static size_t
on_body (char *data, size_t size, size_t n, void *op)
{
  struct reply *r = op;
  size_t k = size * n, room = sizeof r->text - 1 - r->len;

  memcpy (r->text + r->len, data, k < room ? k : room);
  r->len += k < room ? k : room;
  r->text[r->len] = '\0';
  return size * n;
}

static void
chomp (char *s)
{
  size_t n = strlen (s);

  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
}

/* The request on serve's control socket; its header list (to free). */
static struct curl_slist *
setup (CURL *c, const char *sock, const char *url, const char *method,
       const char *body, struct reply *rep)
{
  struct curl_slist *hdr = NULL;

  curl_easy_setopt (c, CURLOPT_UNIX_SOCKET_PATH, sock);
  curl_easy_setopt (c, CURLOPT_URL, url);
  curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt (c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, rep);
  if (body) {
    hdr = curl_slist_append (hdr, "Content-Type: application/json");
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
  }
  return hdr;
}

/* One request; *CODE is the HTTP status, 0 when serve was not reached;
 * REP receives the answer. */
static int
request (const char *sock, const char *method, const char *id,
         const char *body, long *code, struct reply *rep)
{
  CLEANUP_FREE char *url = vb_xasprintf ("http://localhost/tickets/%s", id);
  struct curl_slist *hdr = NULL;
  CURL *c = curl_easy_init ();
  CURLcode rc;

  *code = 0;
  rep->len = 0, rep->text[0] = '\0';
  if (!url || !c) {
    vb_set_error ("out of memory");
    curl_easy_cleanup (c);
    return -1;
  }
  hdr = setup (c, sock, url, method, body, rep);
  rc = curl_easy_perform (c);
  if (rc == CURLE_OK)
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, code);
  curl_slist_free_all (hdr);
  curl_easy_cleanup (c);
  if (rc != CURLE_OK) {
    vb_set_error ("cannot reach virtback serve on %s (%s): start "
                  "'virtback serve', or name its socket with "
                  "--control-socket", sock, curl_easy_strerror (rc));
    return -1;
  }
  chomp (rep->text);
  if (*code >= 300) {
    vb_set_error ("virtback serve on %s refused %s of ticket %s: %ld %s",
                  sock, method, id, *code, rep->text);
    return -1;
  }
  return 0;
}

int
vb_jctl_put (const char *sock, const char *id, const char *body)
{
  struct reply rep;
  long code;

  return request (sock, "PUT", id, body, &code, &rep);
}

int
vb_jctl_delete (const char *sock, const char *id)
{
  struct reply rep;
  long code;

  if (request (sock, "DELETE", id, NULL, &code, &rep) == 0)
    return 0;
  return code == 0 || code == 404 ? 0 : -1;
}

struct json_object *
vb_jctl_get (const char *sock, const char *id)
{
  struct reply rep;
  long code;
  struct json_object *o;

  if (request (sock, "GET", id, NULL, &code, &rep) < 0)
    return NULL;
  if (!(o = json_tokener_parse (rep.text)))
    vb_set_error ("virtback serve on %s: ticket %s is not JSON", sock, id);
  return o;
}

int
vb_jctl_probe (const char *sock)
{
  struct reply rep;
  long code;

  /* No ticket has an empty-looking ID of one dot: serve answers 404. */
  if (request (sock, "GET", "probe.", NULL, &code, &rep) == 0 || code == 404)
    return 0;
  return -1;
}
