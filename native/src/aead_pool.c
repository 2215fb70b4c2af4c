/*
 * Worker threads for the batched AEAD: started once (on the first batch big enough to share),
 * each holding its own encrypt and decrypt contexts, sleeping on a condition variable between
 * jobs. A job hands every worker one contiguous slice of the batch's packets; the caller works
 * on slice 0 meanwhile and waits for the rest before returning, so the JavaScript buffers stay
 * alive and untouched by anyone else for the whole job, and each packet keeps its slot (order
 * is the caller's). Workers block every signal: signals stay with Node's threads.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "aead.h"

#define WORKER_STACK (256 * 1024)

typedef struct {
  pthread_t tid;
  struct meshd_aead_pool* pool;
  int index;
  EVP_CIPHER_CTX* enc;
  EVP_CIPHER_CTX* dec;
  /* this job's slice and result, guarded by pool->mu */
  int64_t from, to, done;
} worker;

struct meshd_aead_pool {
  pthread_mutex_t mu;
  pthread_cond_t go;   /* a new job (generation moved) or stop */
  pthread_cond_t idle; /* remaining reached 0 */
  uint64_t generation;
  int stop;
  int active;    /* workers 0..active-1 take part in the current job */
  int remaining; /* of those, still working */
  int seal;
  const meshd_batch_args* args;
  int nworkers;
  worker w[];
};

static void* worker_main(void* arg) {
  worker* self = (worker*)arg;
  struct meshd_aead_pool* p = self->pool;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->generation == seen) pthread_cond_wait(&p->go, &p->mu);
    if (p->stop) break;
    seen = p->generation;
    if (self->index >= p->active) continue;
    int seal = p->seal;
    const meshd_batch_args* a = p->args;
    int64_t from = self->from, to = self->to;
    pthread_mutex_unlock(&p->mu);
    int64_t done = meshd_aead_range(seal ? self->enc : self->dec, seal, a, from, to);
    pthread_mutex_lock(&p->mu);
    self->done = done;
    if (--p->remaining == 0) pthread_cond_signal(&p->idle);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

meshd_aead_pool* meshd_aead_pool_new(int workers) {
  if (workers < 1) return NULL;
  struct meshd_aead_pool* p = (struct meshd_aead_pool*)calloc(1, sizeof *p + (size_t)workers * sizeof(worker));
  if (p == NULL) return NULL;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  pthread_cond_init(&p->idle, NULL);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, WORKER_STACK);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the workers */
  for (int i = 0; i < workers; i++) {
    worker* w = &p->w[p->nworkers];
    w->pool = p;
    w->index = p->nworkers;
    if (!meshd_aead_ctx_pair(&w->enc, &w->dec)) break;
    if (pthread_create(&w->tid, &attr, worker_main, w) != 0) {
      meshd_aead_ctx_pair_free(w->enc, w->dec);
      break;
    }
    p->nworkers++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (p->nworkers == 0) {
    meshd_aead_pool_free(p);
    return NULL;
  }
  return p;
}

int meshd_aead_pool_workers(const meshd_aead_pool* pool) { return pool == NULL ? 0 : pool->nworkers; }

int64_t meshd_aead_pool_run(meshd_aead_pool* p, int seal, const meshd_batch_args* a, const int64_t* bounds, int nslices,
                            EVP_CIPHER_CTX* caller_ctx) {
  int helpers = nslices - 1;
  if (helpers > p->nworkers) helpers = p->nworkers;
  if (helpers < 0) helpers = 0;
  pthread_mutex_lock(&p->mu);
  p->seal = seal;
  p->args = a;
  p->active = helpers;
  p->remaining = helpers;
  for (int k = 0; k < helpers; k++) {
    p->w[k].from = bounds[k + 1];
    p->w[k].to = bounds[k + 2];
    p->w[k].done = 0;
  }
  p->generation++;
  if (helpers > 0) pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);

  int64_t total = meshd_aead_range(caller_ctx, seal, a, bounds[0], bounds[1]);

  pthread_mutex_lock(&p->mu);
  while (p->remaining > 0) pthread_cond_wait(&p->idle, &p->mu);
  for (int k = 0; k < helpers; k++) total += p->w[k].done;
  p->args = NULL;
  pthread_mutex_unlock(&p->mu);
  return total;
}

void meshd_aead_pool_free(meshd_aead_pool* p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nworkers; i++) {
    pthread_join(p->w[i].tid, NULL);
    meshd_aead_ctx_pair_free(p->w[i].enc, p->w[i].dec);
  }
  pthread_cond_destroy(&p->idle);
  pthread_cond_destroy(&p->go);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
