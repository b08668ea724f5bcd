// `maskmix train`: AdamW with linear warmup/decay (HF Trainer semantics), gradient clipping, periodic
// evaluation, atomic checkpoints, bit-exact --resume, and a graceful stop on SIGINT/SIGTERM.
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "cmd/cli.h"
#include "cmd/commands.h"
#include "core/batcher.h"
#include "core/csv.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/signals.h"
#include "model/checkpoint.h"
#include "model/flops.h"
#include "model/model.h"
#include "model/optimizer.h"
#include "ops/backend.h"

extern "C" void openblas_set_num_threads(int);

namespace mm {

namespace {

// Everything that defines a run; saved as DIR/run.json so --resume continues with the same settings.
struct TrainSettings {
  std::string model, init, data, padding, device, precision = "tf32", out;
  int batch = 16, warmup = 500, eval_every = 200, eval_batches = 20, ckpt_every = 500, log_every = 10;
  int64_t steps = 0;
  double epochs = 0, lr = 5e-4, clip = 1.0, weight_decay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  uint64_t seed = 1;
  bool keep_checkpoints = false, recompute = false;
  std::string command_line;

  Json to_json() const {
    return Json(Json::Object{
        {"model", Json(model)}, {"init", Json(init)}, {"data", Json(data)}, {"padding", Json(padding)}, {"device", Json(device)}, {"precision", Json(precision)},
        {"batch", Json(static_cast<int64_t>(batch))}, {"warmup", Json(static_cast<int64_t>(warmup))},
        {"eval_every", Json(static_cast<int64_t>(eval_every))}, {"eval_batches", Json(static_cast<int64_t>(eval_batches))},
        {"ckpt_every", Json(static_cast<int64_t>(ckpt_every))}, {"log_every", Json(static_cast<int64_t>(log_every))},
        {"steps", Json(steps)}, {"epochs", Json(epochs)}, {"lr", Json(lr)}, {"clip", Json(clip)}, {"weight_decay", Json(weight_decay)},
        {"beta1", Json(beta1)}, {"beta2", Json(beta2)}, {"eps", Json(eps)}, {"seed", Json(static_cast<int64_t>(seed))},
        {"keep_checkpoints", Json(keep_checkpoints)}, {"recompute", Json(recompute)}, {"command", Json(command_line)}});
  }
  static TrainSettings from_json(const Json& j) {
    TrainSettings s;
    const auto& o = j.obj();
    s.model = o.at("model").str(); s.init = o.at("init").str(); s.data = o.at("data").str(); s.padding = o.at("padding").str();
    s.device = o.at("device").str();
    if (const Json* p = j.find("precision")) s.precision = p->str();
    if (const Json* r = j.find("recompute")) s.recompute = r->boolean();
    if (const Json* k = j.find("keep_checkpoints")) s.keep_checkpoints = k->boolean();
    s.batch = static_cast<int>(o.at("batch").num()); s.warmup = static_cast<int>(o.at("warmup").num());
    s.eval_every = static_cast<int>(o.at("eval_every").num()); s.eval_batches = static_cast<int>(o.at("eval_batches").num());
    s.ckpt_every = static_cast<int>(o.at("ckpt_every").num()); s.log_every = static_cast<int>(o.at("log_every").num());
    s.steps = static_cast<int64_t>(o.at("steps").num()); s.epochs = o.at("epochs").num(); s.lr = o.at("lr").num();
    s.clip = o.at("clip").num(); s.weight_decay = o.at("weight_decay").num(); s.beta1 = o.at("beta1").num();
    s.beta2 = o.at("beta2").num(); s.eps = o.at("eps").num(); s.seed = static_cast<uint64_t>(o.at("seed").num());
    s.command_line = o.at("command").str();
    return s;
  }
};

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int s = static_cast<int>(seconds);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, s % 3600 / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

double peak_rss_gb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1e6;  // kB -> GB
}

double evaluate(Model<float>& model, const ShardReader& valid, const TrainSettings& s, Padding padding) {
  Batcher batcher(valid, model.config().n_ctx, s.batch, padding, s.seed, /*shuffle=*/false);
  const int64_t batches = std::min<int64_t>(s.eval_batches, std::max<uint64_t>(1, batcher.rows_per_epoch() / s.batch));
  double weighted = 0;
  int64_t count = 0;
  Batch batch;
  for (int64_t b = 0; b < batches; ++b) {
    batcher.next(batch);
    double loss = model.forward(batch.inputs.data(), batch.targets.data(), s.batch, false);
    weighted += loss * model.last_target_count();
    count += model.last_target_count();
  }
  return count ? weighted / count : 0.0;
}

void write_checkpoint(const std::string& dir, Model<float>& model, const TrainState& state, const TrainSettings& s, uint64_t tokenizer_hash) {
  const std::vector<float> params = model.save_params();
  std::map<std::string, std::string> meta = {{"step", std::to_string(state.step)},
                                             {"tokenizer_hash", fmt::format("{:016x}", tokenizer_hash)},
                                             {"padding", s.padding},
                                             {"data", s.data}};
  // State first, then weights: a crash in between leaves a state newer than the weights, which
  // --resume detects by comparing their steps.
  save_train_state(dir + "/state.safetensors", state);
  save_weights(dir + "/model.safetensors", model.config(), model.params(), params, meta);
  if (s.keep_checkpoints) {
    make_dirs(dir + "/checkpoints");
    save_weights(fmt::format("{}/checkpoints/step_{:08d}.safetensors", dir, state.step), model.config(), model.params(), params, meta);
  }
}

}  // namespace

int cmd_train(int argc, char** argv) {
  cxxopts::Options options("maskmix train", "Train a masked mixer, transformer or hybrid on prepared shards (causal LM).\n"
                                            "Models: mixer:d512:l8:c512[:expanded|:heads4|:parallel2], llama:d512:l8:h4:c512, "
                                            "gpt:d512:l8:h4:c512, hybrid:d512:l8:h4:c512");
  options.add_options()
      ("model", "model descriptor", cxxopts::value<std::string>()->default_value("mixer:d256:l8:c512"))
      ("data", "prepared data folder (maskmix prepare --out)", cxxopts::value<std::string>()->default_value("data/ts"))
      ("out", "run folder (checkpoints, train.csv)", cxxopts::value<std::string>()->default_value(""))
      ("resume", "continue the run in this folder bit-exactly (its settings are reused; --steps may extend it)", cxxopts::value<std::string>()->default_value(""))
      ("device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))
      ("precision", "CUDA matmuls: bf16 (operands rounded, fp32 accumulate), tf32, or fp32 (exact, for parity checks)",
       cxxopts::value<std::string>()->default_value("bf16"))
      ("init", "paper (each family as in the paper's code), torch or hf", cxxopts::value<std::string>()->default_value("paper"))
      ("padding", "left (the paper's), right or packed", cxxopts::value<std::string>()->default_value("left"))
      ("batch", "sequences per step", cxxopts::value<int>()->default_value("16"))
      ("lr", "peak learning rate", cxxopts::value<double>()->default_value("5e-4"))
      ("warmup", "linear warmup steps", cxxopts::value<int>()->default_value("500"))
      ("steps", "optimizer steps (linear decay to 0 at the end)", cxxopts::value<int64_t>()->default_value("0"))
      ("epochs", "epochs instead of --steps", cxxopts::value<double>()->default_value("0"))
      ("clip", "global gradient-norm clip (0 = off)", cxxopts::value<double>()->default_value("1.0"))
      ("weight-decay", "AdamW decoupled weight decay", cxxopts::value<double>()->default_value("0"))
      ("eval-every", "steps between validation losses", cxxopts::value<int>()->default_value("200"))
      ("eval-batches", "validation batches per evaluation", cxxopts::value<int>()->default_value("20"))
      ("ckpt-every", "steps between checkpoints", cxxopts::value<int>()->default_value("500"))
      ("recompute", "mixer/llama/hybrid: recompute feed-forward activations (and an unfused attention's probabilities) in backward instead of storing them (less memory, same gradients)")
      ("keep-checkpoints", "also keep every checkpoint's weights in OUT/checkpoints/ (for invert --checkpoints)")
      ("log-every", "steps between progress lines and CSV rows", cxxopts::value<int>()->default_value("10"))
      ("stop-after", "stop (with a checkpoint) after this many steps of this invocation", cxxopts::value<int64_t>()->default_value("0"))
      ("seed", "seed for initialisation and data order", cxxopts::value<uint64_t>()->default_value("1"))
      ("threads", "CPU threads (0 = all cores)", cxxopts::value<int>()->default_value("0"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  if (int threads = args["threads"].as<int>(); threads > 0) {
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
  }

  TrainSettings s;
  TrainState state;
  const std::string resume_dir = args["resume"].as<std::string>();
  std::unique_ptr<Checkpoint> resumed;
  if (!resume_dir.empty()) {
    try {
      s = TrainSettings::from_json(parse_json(read_text_file(resume_dir + "/run.json")));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail(fmt::format("{}/run.json: unreadable run settings: {}", resume_dir, e.what()), "resume only folders written by `maskmix train --out`");
    }
    s.out = resume_dir;
    if (args["steps"].as<int64_t>() > 0) s.steps = args["steps"].as<int64_t>();
    resumed = std::make_unique<Checkpoint>(load_weights(resume_dir + "/model.safetensors"));
  } else {
    s.model = args["model"].as<std::string>();
    s.init = args["init"].as<std::string>();
    s.data = args["data"].as<std::string>();
    s.padding = args["padding"].as<std::string>();
    s.device = args["device"].as<std::string>();
    s.precision = args["precision"].as<std::string>();
    s.batch = args["batch"].as<int>();
    s.lr = args["lr"].as<double>();
    s.warmup = args["warmup"].as<int>();
    s.steps = args["steps"].as<int64_t>();
    s.epochs = args["epochs"].as<double>();
    s.clip = args["clip"].as<double>();
    s.weight_decay = args["weight-decay"].as<double>();
    s.eval_every = args["eval-every"].as<int>();
    s.eval_batches = args["eval-batches"].as<int>();
    s.ckpt_every = args["ckpt-every"].as<int>();
    s.log_every = args["log-every"].as<int>();
    s.seed = args["seed"].as<uint64_t>();
    s.keep_checkpoints = args.count("keep-checkpoints") > 0;
    s.recompute = args.count("recompute") > 0;
    s.command_line = joined_command_line(argc, argv);
    s.out = args["out"].as<std::string>();
  }
  if (s.batch <= 0) throw UsageError("--batch must be positive", "e.g. --batch 16");
  if (!(s.lr > 0)) throw UsageError("--lr must be positive", "e.g. --lr 5e-4");
  if (s.steps <= 0 && s.epochs <= 0) throw UsageError("give --steps N or --epochs E", "e.g. --steps 300");
  if (s.log_every <= 0 || s.eval_every <= 0 || s.ckpt_every <= 0) throw UsageError("--log-every, --eval-every and --ckpt-every must be positive", "e.g. --eval-every 200");

  PreparedData data = PreparedData::open(s.data);
  const int vocab = static_cast<int>(data.train->header().vocab_size);
  ModelConfig config = resumed ? resumed->config : ModelConfig::parse(s.model, vocab);
  config.init = resumed ? resumed->config.init : parse_init(s.init);
  if (config.vocab != vocab)
    fail(fmt::format("model vocab {} differs from the data's {} ({})", config.vocab, vocab, s.data), "drop the :vN part of --model, or prepare data with that vocabulary");
  const Padding padding = parse_padding(s.padding);
  const Device device = parse_device(s.device);
  const Precision precision = parse_precision(s.precision);
  if (s.out.empty()) s.out = "runs/" + config.descriptor();
  if (resumed) {
    const auto it = resumed->metadata.find("tokenizer_hash");
    if (it == resumed->metadata.end() || it->second != fmt::format("{:016x}", data.tokenizer_hash))
      fail(fmt::format("{}: the run was trained with another tokenizer than {}", s.out, s.data), "resume with the data folder the run started with");
  }

  auto backend = make_backend(device, precision);
  Ops<float>& ops = *backend;
  Model<float> model(config, ops, s.batch, s.recompute);
  const size_t n_params = model.num_params();
  DeviceArray<float, float> adam_m(ops, n_params), adam_v(ops, n_params);
  Batcher batcher(*data.train, config.n_ctx, s.batch, padding, s.seed);
  if (s.steps <= 0) s.steps = static_cast<int64_t>(std::ceil(s.epochs * batcher.rows_per_epoch() / s.batch));

  if (resumed) {
    state = load_train_state(s.out + "/state.safetensors", n_params);
    const int64_t weights_step = std::stoll(resumed->metadata.at("step"));
    if (weights_step != state.step)
      fail(fmt::format("{}: weights are at step {} but the training state at step {} (interrupted while saving?)", s.out, weights_step, state.step),
           "restart the run, or copy a matching pair from checkpoints/");
    model.load_params(resumed->params);
    ops.to_device(adam_m.get(), state.adam_m.data(), n_params * sizeof(float));
    ops.to_device(adam_v.get(), state.adam_v.data(), n_params * sizeof(float));
    batcher.set_cursor(state.cursor);
    state.total_steps = s.steps;
    std::cerr << fmt::format("train: resuming {} at step {}/{}\n", s.out, state.step, s.steps);
  } else {
    model.init_params(s.seed);
    state.total_steps = s.steps;
  }
  make_dirs(s.out);  // only once every setting is known to be valid: a refused run leaves nothing behind
  write_file_atomic(s.out + "/run.json", s.to_json().dump() + "\n");

  const double flops_per_token = training_flops_per_token(config, model.params());
  std::cerr << fmt::format("train: {} ({} init), {:.3f}M parameters, {:.1f} MFLOP/token, {} rows/epoch, batch {}, {} steps, device {}\n",
                           config.descriptor(), init_name(config.init), n_params / 1e6, flops_per_token / 1e6, batcher.rows_per_epoch(), s.batch,
                           s.steps, ops.card());
  std::cerr << fmt::format("train: activations {:.1f} MB per sequence, {:.2f} GB at batch {} (fp32; parameters + gradients + AdamW: {:.2f} GB)\n",
                           model.activation_bytes_per_sequence() / 1e6, model.activation_bytes_per_sequence() * static_cast<double>(s.batch) / 1e9, s.batch,
                           n_params * 16.0 / 1e9);
  if (!resumed) {
    std::cerr << "  parameters:\n";
    for (const ParamInfo& p : model.params().entries()) {
      std::string shape;
      for (size_t i = 0; i < p.shape.size(); ++i) shape += (i ? "x" : "") + std::to_string(p.shape[i]);
      std::cerr << fmt::format("    {:<32} {:>14} {:>12}{}\n", p.name, shape, p.numel, p.lower_triangular ? "  (lower-triangular)" : "");
    }
  }

  const std::string csv_path = s.out + "/train.csv";
  CsvWriter csv(csv_path, {"step", "tokens", "epoch", "lr", "train_loss", "val_loss", "grad_norm", "step_ms", "tokens_per_s", "mfu", "mem_gb", "elapsed_s"},
                /*append=*/resumed != nullptr);
  RunMeta meta{resumed ? joined_command_line(argc, argv) : s.command_line,
               {{"model", config.descriptor()}, {"init", init_name(config.init)}, {"padding", s.padding}, {"data", s.data},
                {"tokenizer_hash", fmt::format("{:016x}", data.tokenizer_hash)}, {"parameters", std::to_string(n_params)},
                {"flops_per_token", fmt::format("{:.0f}", flops_per_token)}, {"batch", std::to_string(s.batch)}, {"lr", fmt::format("{}", s.lr)},
                {"warmup", std::to_string(s.warmup)}, {"steps", std::to_string(s.steps)}, {"seed", std::to_string(s.seed)},
                {"original_command", s.command_line}}};
  write_meta(csv_path, meta, ops.card());

  StopRequest::install();
  const int64_t stop_after = args["stop-after"].as<int64_t>();
  const int64_t first_step = state.step;
  Batch batch;
  double loss_sum = 0, norm_sum = 0, window_s = 0;
  int window_steps = 0;
  const double tokens_per_step = static_cast<double>(s.batch) * config.n_ctx;
  auto run_start = std::chrono::steady_clock::now();
  while (state.step < s.steps) {
    auto t0 = std::chrono::steady_clock::now();
    batcher.next(batch);
    const double loss = model.train_step(batch.inputs.data(), batch.targets.data(), s.batch);
    if (!std::isfinite(loss))
      fail(fmt::format("loss became {} at step {}", loss, state.step + 1),
           fmt::format("lower --lr or raise --warmup; the last good checkpoint is in {}", s.out));
    const double lr = s.lr * linear_schedule(state.step, s.warmup, s.steps);
    const AdamWSettings opt{s.beta1, s.beta2, s.eps, s.weight_decay, s.clip};
    const double grad_norm = clipped_adamw_step(ops, model.param_data(), model.grad_data(), adam_m.get(), adam_v.get(), n_params, lr, opt, state.step + 1);
    ops.synchronize();
    const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++state.step;
    state.tokens_seen += tokens_per_step;
    state.elapsed_s += step_s;
    loss_sum += loss;
    norm_sum += grad_norm;
    window_s += step_s;
    ++window_steps;

    const bool last = state.step == s.steps;
    const bool do_eval = state.step % s.eval_every == 0 || last;
    if (state.step % s.log_every == 0 || do_eval || last) {
      std::string val;
      if (do_eval) val = fmt::format("{:.6f}", evaluate(model, *data.valid, s, padding));
      const double tps = tokens_per_step * window_steps / window_s;
      const double epoch = static_cast<double>(batcher.cursor().epoch) + static_cast<double>(batcher.cursor().row) / batcher.rows_per_epoch();
      const double eta = (s.steps - state.step) * window_s / window_steps;
      csv.row({std::to_string(state.step), fmt::format("{:.0f}", state.tokens_seen), fmt::format("{:.4f}", epoch), fmt::format("{:.6g}", lr),
               fmt::format("{:.6f}", loss_sum / window_steps), val, fmt::format("{:.4f}", norm_sum / window_steps),
               fmt::format("{:.2f}", 1000 * window_s / window_steps), fmt::format("{:.0f}", tps), "", fmt::format("{:.3f}", ops.device() == Device::Cpu ? peak_rss_gb() : ops.peak_bytes() / 1e9),
               fmt::format("{:.2f}", state.elapsed_s)});
      std::cerr << fmt::format("step {:>6}/{} | loss {:.4f}{} | lr {:.2e} | grad {:.3f} | {:.0f} tok/s | ETA {}\n", state.step, s.steps,
                               loss_sum / window_steps, do_eval ? fmt::format(" | val {}", val) : "", lr, norm_sum / window_steps, tps,
                               format_duration(eta));
      loss_sum = norm_sum = window_s = 0;
      window_steps = 0;
    }
    const bool stopping = StopRequest::requested() || (stop_after > 0 && state.step - first_step >= stop_after);
    if (state.step % s.ckpt_every == 0 || last || stopping) {
      state.cursor = batcher.cursor();
      state.adam_m.resize(n_params);
      state.adam_v.resize(n_params);
      ops.to_host(state.adam_m.data(), adam_m.get(), n_params * sizeof(float));
      ops.to_host(state.adam_v.data(), adam_v.get(), n_params * sizeof(float));
      write_checkpoint(s.out, model, state, s, data.tokenizer_hash);
    }
    if (stopping && !last) {
      std::cerr << fmt::format("train: stopped at step {}; checkpoint saved. Continue with: maskmix train --resume {}\n", state.step, s.out);
      return 0;
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  std::cout << fmt::format("trained {} to step {} in {}; checkpoint and train.csv in {}\n", config.descriptor(), state.step, format_duration(wall), s.out);
  return 0;
}

}  // namespace mm
